"""One video: decode, detect, track, mask, encode, in overlapping threads (see `pipeline`)."""
