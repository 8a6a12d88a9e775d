"""Header names the bus writes, in one place so producers, consumers and the reality check agree."""

ATTEMPT = "x-tradebus-attempt"
# Permanent handler failures so far (transient ones are not counted); carried by re-published copies.
FAILURES = "x-tradebus-failures"
ROUTING_KEY = "x-tradebus-routing-key"
ERROR = "x-tradebus-error"
ERROR_KIND = "x-tradebus-error-kind"
EXCEPTION = "x-tradebus-exception"
ORIGINAL_QUEUE = "x-tradebus-original-queue"
DEAD_LETTERED_AT = "x-tradebus-dead-lettered-at"
# Written when an operator moves a dead letter back (`tradebus dead-letters requeue`).
REQUEUED_AT = "x-tradebus-requeued-at"
REQUEUES = "x-tradebus-requeues"
PREVIOUS_ERROR = "x-tradebus-previous-error"

# Error kinds in the ERROR_KIND header of a dead-lettered message.
KIND_VALIDATION = "validation"
KIND_UNEXPECTED_TYPE = "unexpected_type"
KIND_HANDLER = "handler"
# Published under a routing key its content does not match (a forgery the broker's topic
# permissions cannot see: they judge the key, never the body).
KIND_MISROUTED = "misrouted"
# In handling when max_crashes consumer processes died (infra.bus.journal).
KIND_CRASH = "crash"

# Headers are stored in the broker with every copy; a traceback-sized error is cut short.
MAX_ERROR_LENGTH = 2000
