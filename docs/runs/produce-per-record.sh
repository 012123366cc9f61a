#!/bin/bash
# aiokafka's per-record API against its batch API: CPU per record for 100,000 records of 300
# bytes (a segment change) and of 2,000 bytes (a customer's state), to 4 partitions with
# acks from all in-sync replicas, two rounds each (docs/benchmarks.md, round two).
set -e
cd "$(git rev-parse --show-toplevel)"
export SEGSTREAM_STACK_DIR=/tmp/ppr/stack SEGSTREAM_KAFKA_BOOTSTRAP=127.0.0.1:39192 \
  SEGSTREAM_REDIS_URL=redis://127.0.0.1:36479/0
.venv/bin/segstream stack start
trap '.venv/bin/segstream stack stop' EXIT
.venv/bin/python - <<'PY'
import asyncio, os, time
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

SERVERS, N, PARTITIONS = os.environ["SEGSTREAM_KAFKA_BOOTSTRAP"], 100_000, [0, 1, 2, 3]

async def one_by_one(producer, topic, keys, value):
    sent = [await producer.send(topic, value, key=key) for key in keys]
    await asyncio.gather(*sent)

async def batched(producer, topic, keys, value):
    partitioner, builders, sent = DefaultPartitioner(), {}, []
    for key in keys:
        partition = partitioner(key, PARTITIONS, PARTITIONS)
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None) is None:
            sent.append(await producer.send_batch(builder, topic, partition=partition))
            builder = builders[partition] = producer.create_batch()
            builder.append(key=key, value=value, timestamp=None)
    for partition, builder in builders.items():
        sent.append(await producer.send_batch(builder, topic, partition=partition))
    await asyncio.gather(*sent)

async def main():
    topic = f"produce-per-record-{os.getpid()}"
    admin = AIOKafkaAdminClient(bootstrap_servers=SERVERS)
    await admin.start()
    await admin.create_topics([NewTopic(topic, len(PARTITIONS), 1)])
    await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=SERVERS, acks="all", linger_ms=5, max_batch_size=1024 * 1024
    )
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up", key=b"k")
    keys = [f"c{n:07d}".encode() for n in range(N)]
    for size in (300, 2000):
        for way in (one_by_one, batched, one_by_one, batched):
            cpu = time.process_time()
            await way(producer, topic, keys, b"x" * size)
            cpu = time.process_time() - cpu
            print(f"{way.__name__:10} {size:5} B: {cpu / N * 1e6:5.2f} us of CPU per record")
    await producer.stop()

asyncio.run(main())
PY
