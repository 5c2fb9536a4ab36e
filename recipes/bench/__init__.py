"""`tzoo bench`: what every variant costs."""
