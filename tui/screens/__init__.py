"""Screens of the ganmgr TUI, one per file."""
