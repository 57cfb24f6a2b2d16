"""The pure core: domain types, device descriptions and detectors. No I/O and no clock reads here."""
