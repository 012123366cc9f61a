#!/bin/bash
# Export of a million members: the worker's resident memory before, during and after streaming
# /v1/segments/repeat_buyers/members.csv (and ?audience=), and the time it takes.
set -e
cd "$(git rev-parse --show-toplevel)"
export SEGSTREAM_STACK_DIR=/tmp/xb/stack SEGSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:39092 \
  SEGSTREAM_REDIS_URL=redis://127.0.0.1:36379/0 SEGSTREAM_WEB_PORT=36066 \
  SEGSTREAM_TOPIC_PREFIX=xb. SEGSTREAM_DATA_DIR=/tmp/xb/data
.venv/bin/segstream stack start
.venv/bin/python - <<'PY'
import orjson, redis, time
r = redis.Redis(port=36379)
r.delete("xb.seg:members:repeat_buyers", "xb.seg:mailable")
now = int(time.time() * 1000)
for start in range(0, 1_000_000, 10_000):
    ids = [f"c{n:07d}" for n in range(start, start + 10_000)]
    p = r.pipeline(transaction=False)
    p.sadd("xb.seg:members:repeat_buyers", *ids)
    p.hset("xb.seg:mailable", mapping={i: orjson.dumps([1, None, "Europe/Berlin", [[now - 86_400_000, "spring", None]]]) for i in ids})
    p.execute()
print("members:", r.scard("xb.seg:members:repeat_buyers"))
PY
.venv/bin/segstream worker > /tmp/xb/worker.log 2>&1 &
W=$!
until curl -s localhost:36066/health | grep -q '"ready":true'; do sleep 1; done
rss() { ps -o rss= -p $W | tr -d ' '; }
echo "rss before: $(rss) KB"
( while kill -0 $W 2>/dev/null; do rss >> /tmp/xb/rss.txt; sleep 0.2; done ) &
S=$!
: > /tmp/xb/rss.txt
t0=$(date +%s.%N)
curl -s localhost:36066/v1/segments/repeat_buyers/members.csv -o /tmp/xb/all.csv
t1=$(date +%s.%N)
curl -s "localhost:36066/v1/segments/repeat_buyers/members.csv?audience=autumn" -o /tmp/xb/audience.csv
t2=$(date +%s.%N)
kill $S
echo "rows all: $(($(wc -l < /tmp/xb/all.csv) - 1)), audience: $(($(wc -l < /tmp/xb/audience.csv) - 1))"
echo "seconds all: $(echo "$t1 - $t0" | bc), audience: $(echo "$t2 - $t1" | bc)"
echo "rss max during: $(sort -n /tmp/xb/rss.txt | tail -1) KB; after: $(rss) KB"
kill $W; wait $W || true
.venv/bin/segstream stack stop
