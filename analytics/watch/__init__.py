"""One home's watch, one concern a module; :class:`analytics.detector.HomeDetector` puts them together."""
