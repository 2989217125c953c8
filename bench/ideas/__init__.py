"""Ideas measured with the bench on a copy of recipes/ (never applied to recipes/ here)."""
