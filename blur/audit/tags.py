"""Names of TIFF and EXIF tags, and which ones are harmless technical fields.

Tag numbers follow the TIFF 6.0 and EXIF 3.0 specifications (the same numbers exiftool lists).
"""

from __future__ import annotations

IFD_POINTERS: dict[int, str] = {0x8769: "ExifIFD", 0x8825: "GPS", 0xA005: "Interop", 0x014A: "SubIFD"}
"""Tags whose value points to another directory, and the role of that directory."""

TAG_NAMES: dict[int, str] = {
    0x00FE: "NewSubfileType", 0x00FF: "SubfileType", 0x0100: "ImageWidth", 0x0101: "ImageLength",
    0x0102: "BitsPerSample", 0x0103: "Compression", 0x0106: "PhotometricInterpretation", 0x010A: "FillOrder",
    0x010D: "DocumentName", 0x010E: "ImageDescription", 0x010F: "Make", 0x0110: "Model", 0x0111: "StripOffsets",
    0x0112: "Orientation", 0x0115: "SamplesPerPixel", 0x0116: "RowsPerStrip", 0x0117: "StripByteCounts",
    0x011A: "XResolution", 0x011B: "YResolution", 0x011C: "PlanarConfiguration", 0x011D: "PageName",
    0x0128: "ResolutionUnit", 0x0129: "PageNumber", 0x012D: "TransferFunction", 0x0131: "Software",
    0x0132: "DateTime", 0x013B: "Artist", 0x013C: "HostComputer", 0x013D: "Predictor", 0x013E: "WhitePoint",
    0x013F: "PrimaryChromaticities", 0x0140: "ColorMap", 0x0142: "TileWidth", 0x0143: "TileLength",
    0x0144: "TileOffsets", 0x0145: "TileByteCounts", 0x014A: "SubIFDs", 0x0152: "ExtraSamples",
    0x0153: "SampleFormat", 0x015B: "JPEGTables", 0x0201: "ThumbnailOffset", 0x0202: "ThumbnailLength",
    0x0211: "YCbCrCoefficients", 0x0212: "YCbCrSubSampling", 0x0213: "YCbCrPositioning",
    0x0214: "ReferenceBlackWhite", 0x02BC: "XMP", 0x4746: "Rating", 0x8298: "Copyright", 0x829A: "ExposureTime",
    0x829D: "FNumber", 0x83BB: "IPTC", 0x8649: "PhotoshopResources", 0x8769: "ExifIFD", 0x8773: "ICCProfile",
    0x8822: "ExposureProgram", 0x8825: "GPSInfo", 0x8827: "ISO", 0x9000: "ExifVersion",
    0x9003: "DateTimeOriginal", 0x9004: "CreateDate", 0x9010: "OffsetTime", 0x9011: "OffsetTimeOriginal",
    0x9012: "OffsetTimeDigitized", 0x9101: "ComponentsConfiguration", 0x9201: "ShutterSpeedValue",
    0x9202: "ApertureValue", 0x9204: "ExposureBiasValue", 0x9207: "MeteringMode", 0x9209: "Flash",
    0x920A: "FocalLength", 0x927C: "MakerNote", 0x9286: "UserComment", 0x9290: "SubSecTime",
    0x9291: "SubSecTimeOriginal", 0x9292: "SubSecTimeDigitized", 0x935C: "ImageSourceData", 0x9C9B: "XPTitle",
    0x9C9C: "XPComment", 0x9C9D: "XPAuthor", 0x9C9E: "XPKeywords", 0x9C9F: "XPSubject", 0xA000: "FlashpixVersion",
    0xA001: "ColorSpace", 0xA002: "PixelXDimension", 0xA003: "PixelYDimension", 0xA004: "RelatedSoundFile",
    0xA005: "InteropIFD", 0xA420: "ImageUniqueID", 0xA430: "CameraOwnerName", 0xA431: "BodySerialNumber",
    0xA432: "LensSpecification", 0xA433: "LensMake", 0xA434: "LensModel", 0xA435: "LensSerialNumber",
    0xA436: "ImageTitle", 0xA437: "Photographer", 0xA438: "ImageEditor", 0xA439: "CameraFirmware",
    0xA43A: "RAWDevelopingSoftware", 0xA43B: "ImageEditingSoftware", 0xA43C: "MetadataEditingSoftware",
    0xC4A5: "PrintIM", 0xC612: "DNGVersion", 0xC62F: "CameraSerialNumber",
}

GPS_NAMES: dict[int, str] = {
    0x00: "GPSVersionID", 0x01: "GPSLatitudeRef", 0x02: "GPSLatitude", 0x03: "GPSLongitudeRef",
    0x04: "GPSLongitude", 0x05: "GPSAltitudeRef", 0x06: "GPSAltitude", 0x07: "GPSTimeStamp",
    0x08: "GPSSatellites", 0x0C: "GPSSpeedRef", 0x0D: "GPSSpeed", 0x10: "GPSImgDirectionRef",
    0x11: "GPSImgDirection", 0x12: "GPSMapDatum", 0x1B: "GPSProcessingMethod", 0x1C: "GPSAreaInformation",
    0x1D: "GPSDateStamp",
}

INTEROP_NAMES: dict[int, str] = {0x0001: "InteropIndex", 0x0002: "InteropVersion"}

EMBEDDED_ALLOWED: dict[str, frozenset[int]] = {
    "IFD0": frozenset({0x0112, 0x011A, 0x011B, 0x0128, 0x0213, 0x8769}),
    "ExifIFD": frozenset({0x9000, 0x9101, 0xA000, 0xA001, 0xA002, 0xA003, 0xA005}),
    "Interop": frozenset({0x0001, 0x0002}),
}
"""The only EXIF fields an EXIF block inside a JPEG, PNG, WebP or HEIF may hold: orientation,
resolution, colour space and versions. Everything else (times, camera, GPS, owner) is reported."""

TIFF_BASELINE = frozenset({
    0x00FE, 0x00FF, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x010A, 0x0111, 0x0112, 0x0115, 0x0116, 0x0117,
    0x0118, 0x0119, 0x011A, 0x011B, 0x011C, 0x0128, 0x012D, 0x013D, 0x013E, 0x013F, 0x0140, 0x0142, 0x0143,
    0x0144, 0x0145, 0x0152, 0x0153, 0x0154, 0x0155, 0x015B, 0x0211, 0x0212, 0x0213, 0x0214,
})
"""TIFF tags that only describe how the pixels are stored (size, layout, compression, colour)."""


def tag_name(ifd: str, tag: int) -> str:
    """A readable name for `tag` in a directory of role `ifd`."""
    if ifd == "GPS":
        return GPS_NAMES.get(tag, f"GPS tag 0x{tag:04x}")
    if ifd == "Interop":
        return INTEROP_NAMES.get(tag, f"interop tag 0x{tag:04x}")
    return TAG_NAMES.get(tag, f"tag 0x{tag:04x}")
