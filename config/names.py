"""Topic names and Redis key prefixes: the one place they are spelled."""

# Input topics (the event contract).
PURCHASES = "purchases"
EMAIL_OPENS = "email-opens"
EMAIL_CLICKS = "email-clicks"
CART_EVENTS = "cart-events"
PROFILE_UPDATES = "profile-updates"
SUPPORT_CONTACTS = "support-contacts"
PAGE_VIEWS = "page-views"
CUSTOMER_ERASURES = "customer-erasures"

EVENT_TOPICS = (
    PURCHASES,
    EMAIL_OPENS,
    EMAIL_CLICKS,
    CART_EVENTS,
    PROFILE_UPDATES,
    SUPPORT_CONTACTS,
    PAGE_VIEWS,
)
# Internal: the worker's timer asks the customer agent to evaluate due deadlines.
CUSTOMER_TICKS = "customer-ticks"
INPUT_TOPICS = (*EVENT_TOPICS, CUSTOMER_ERASURES)

# Output topics.
SEGMENT_CHANGES = "segment-changes"
TRIGGERS = "triggers"
DEAD_LETTERS = "dead-letters"
LATE_EVENTS = "late-events"  # side records: events applied, but partly too late to count

OUTPUT_TOPICS = (SEGMENT_CHANGES, TRIGGERS, DEAD_LETTERS, LATE_EVENTS)

# Faust tables (their changelog topics are named by Faust: "<app id>-<table>-changelog").
CUSTOMERS_TABLE = "customers"

# Redis keys of the serving store, after the deployment's prefix ("<topic prefix>seg:").
REDIS_ROOT = "seg:"
REDIS_MEMBERS = "members:"  # + segment: SET of customer ids
REDIS_CUSTOMER = "customer:"  # + customer id: SET of segments
REDIS_VERSIONS = "versions"  # HASH customer id -> version whose whole state the store reflects
REDIS_SEEN = "seen"  # HASH customer id -> newest version applied over a gap (above versions only)
REDIS_CHANGES = "changes"  # STREAM of applied changes, capped
REDIS_HISTORY = "history:"  # + segment: LIST of "epoch-ms size" samples, newest first
REDIS_HISTORY_LOCK = "history-lock"  # one sampler per interval across workers
REDIS_SPEND = "spend"  # HASH customer id -> lifetime spend (revenue per segment)
REDIS_IN_STEP = "in-step"  # HASH partition -> "checking" | "done" (store checked against table)
