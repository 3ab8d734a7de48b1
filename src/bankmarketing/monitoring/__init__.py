"""The `monitor` stage: Evidently drift and quality per period, stored in typed tables."""
