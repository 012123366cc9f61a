"""Topic names and Redis key prefixes: the one place they are spelled."""

# Input topics (the event contract).
PURCHASES = "purchases"
EMAIL_OPENS = "email-opens"
EMAIL_CLICKS = "email-clicks"
CART_EVENTS = "cart-events"
PROFILE_UPDATES = "profile-updates"

INPUT_TOPICS = (PURCHASES, EMAIL_OPENS, EMAIL_CLICKS, CART_EVENTS, PROFILE_UPDATES)

# Output topics.
SEGMENT_CHANGES = "segment-changes"
DEAD_LETTERS = "dead-letters"

OUTPUT_TOPICS = (SEGMENT_CHANGES, DEAD_LETTERS)

# Faust tables (their changelog topics are named by Faust: "<app id>-<table>-changelog").
CUSTOMERS_TABLE = "customers"

# Redis key prefixes (used by the serving store).
REDIS_SEGMENT_MEMBERS = "seg:members:"
REDIS_CUSTOMER_SEGMENTS = "seg:customer:"
