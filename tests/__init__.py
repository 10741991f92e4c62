"""Spillway tests: unit tests and end-to-end tests against live processes."""
