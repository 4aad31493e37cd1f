"""Checking what was masked before publishing: the review page and the pictures it shows."""
