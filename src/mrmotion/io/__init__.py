"""File formats: tracking logs, transform and prescription JSON, safe writing."""
