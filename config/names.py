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
# Links an anonymous id to a customer id (an identify with both, or an alias); key anon:<id>.
IDENTITY_LINKS = "identity-links"

EVENT_TOPICS = (
    PURCHASES,
    EMAIL_OPENS,
    EMAIL_CLICKS,
    CART_EVENTS,
    PROFILE_UPDATES,
    SUPPORT_CONTACTS,
    PAGE_VIEWS,
)
# What the shop sent: an email to a customer. Send eligibility counts them; they are no
# activity of the customer's (no segment reads them).
EMAIL_SENDS = "email-sends"
# Internal: the worker's timer asks the customer agent to evaluate due deadlines.
CUSTOMER_TICKS = "customer-ticks"
# Internal: an anonymous visitor's history (at the link) and later events, sent to the customer.
IDENTITY_MERGES = "identity-merges"
INPUT_TOPICS = (*EVENT_TOPICS, EMAIL_SENDS, CUSTOMER_ERASURES, IDENTITY_LINKS)
INTERNAL_TOPICS = (CUSTOMER_TICKS, IDENTITY_MERGES)

# Output topics.
SEGMENT_CHANGES = "segment-changes"
TRIGGERS = "triggers"
DEAD_LETTERS = "dead-letters"
LATE_EVENTS = "late-events"  # side records: events applied, but partly too late to count
CAMPAIGN_FACTS = "campaign-facts"  # sends, opens, clicks, purchases for the campaign report

OUTPUT_TOPICS = (SEGMENT_CHANGES, TRIGGERS, DEAD_LETTERS, LATE_EVENTS, CAMPAIGN_FACTS)

# The live segment definitions: compacted, one partition (one order), key = segment name.
SEGMENT_DEFINITIONS = "segment-definitions"
# Webhook subscriptions: compacted, one partition, key = subscription id. Each subscription
# reads the output topics in a consumer group of its own, named from the app's and its id.
WEBHOOK_SUBSCRIPTIONS = "webhook-subscriptions"
WEBHOOK_GROUP = "-webhook-"

# The record key of an anonymous visitor (a value with anonymous_id and no customer_id) starts
# with this; customer ids may not.
ANONYMOUS_KEY = "anon:"

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
REDIS_REVENUE = "revenue"  # HASH segment -> its members' spend together, in cents
REDIS_REVENUE_COUNTED = "revenue-counted"  # "1" once revenue was counted from the members
REDIS_MAILABLE = "mailable"  # HASH customer id -> what send eligibility needs (JSON)
REDIS_FACT_SEQS = "fact-seqs"  # HASH customer id -> the last campaign report fact applied
REDIS_CAMPAIGNS = "campaigns"  # SET of campaign ids the report has
REDIS_REPORT = "report:"  # + campaign: HASH "<segment>|<count>" -> number (sends, ..., revenue)
REDIS_LIFT = "lift:"  # + segment: HASH "<held_out|mailed>|<purchases|revenue>" -> number
REDIS_CURRENCIES = "currencies"  # HASH currency code -> purchases seen in it (revenue's unit)
REDIS_DEFINITIONS_LOCK = "definitions-lock"  # one definitions edit at a time (API)
REDIS_WEBHOOKS = "webhooks:"  # + subscription id: HASH of delivery counts and the last error
REDIS_WORKERS = "workers"  # HASH worker -> JSON of the definitions it runs and its progress
REDIS_IN_STEP = "in-step"  # HASH partition -> "checking" | "done" (store checked against table)
