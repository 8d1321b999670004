"""The history server: replays event logs into the driver UI's pages."""
