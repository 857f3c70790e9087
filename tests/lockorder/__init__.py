"""Tests of lock-order checking and thread affinity."""
