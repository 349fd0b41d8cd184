"""Tests of the safety stage."""
