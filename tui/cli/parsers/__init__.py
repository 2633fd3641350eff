"""The `ganmgr` commands' argument parsers, one light module per command group.

Built for every command (`ganmgr --help` lists them all), so they import only argument types
(`tui.cli.args`) and constants (`engine.control.config`, `store.checks`): never the store's database
layer, whose import is most of a command's start-up time.
"""
