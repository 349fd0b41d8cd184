"""Lexicons shipped with kefu (a package so that wheels include them)."""
