"""One photo: read, detect, mask, verify (the second pass), write."""
