"""`blur audit`: check files about to be published for metadata, hidden images and visible faces.

Containers are parsed from their raw bytes (JPEG markers, PNG chunks, RIFF chunks, TIFF directories),
HEIF through libheif and videos through PyAV, so the audit does not depend on the writer that made
the file. Faces are found by a fresh detection on the decoded, upright pixels.
"""

from __future__ import annotations

from blur.audit.faces import FaceCheck
from blur.audit.model import AuditOptions, Category, FileAudit, Finding, Verdict
from blur.audit.run import audit_file, audit_paths

__all__ = ["AuditOptions", "Category", "FaceCheck", "FileAudit", "Finding", "Verdict", "audit_file", "audit_paths"]
