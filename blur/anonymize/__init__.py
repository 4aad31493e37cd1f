"""Turning detections into masks and masked pixels."""
