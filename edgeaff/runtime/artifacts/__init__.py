"""What edgeaff writes and reads back: the bundle and its manifest, fold checkpoint headers, prepared data."""
