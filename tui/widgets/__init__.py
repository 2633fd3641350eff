"""Widgets of the ganmgr TUI, one per file."""
