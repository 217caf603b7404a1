"""Spark reaches every service through the connector jars fetched from Maven Central."""

import uuid

from pymongo import MongoClient


def test_spark_writes_and_reads_mongo_through_the_connector(platform, spark):
    collection = f"it_spark_{uuid.uuid4().hex[:8]}"
    frame = spark.createDataFrame([(f"P{i}", i, float(i) * 1.5) for i in range(20)], "sku string, units int, revenue double")
    options = {
        "connection.uri": platform.mongo.uri,
        "database": platform.mongo.database,
        "collection": collection,
    }
    try:
        frame.write.format("mongodb").options(**options).mode("append").save()
        # FerretDB 1.x lacks the `$sample` stage the connector uses for schema inference and
        # for its default partitioner: reads give the schema and a single-partition partitioner.
        back = (
            spark.read.format("mongodb")
            .options(**options)
            .option("partitioner", "com.mongodb.spark.sql.connector.read.partitioner.SinglePartitionPartitioner")
            .schema(frame.schema)
            .load()
        )
        assert back.count() == 20
        assert back.agg({"units": "sum"}).first()[0] == sum(range(20))
    finally:
        client = MongoClient(platform.mongo.uri)
        client[platform.mongo.database].drop_collection(collection)
        client.close()


def test_spark_kafka_batch_read(platform, spark):
    from confluent_kafka import Producer

    topic = platform.kafka.system_metrics.name
    marker = uuid.uuid4().hex
    producer = Producer({"bootstrap.servers": platform.kafka.bootstrap_servers})
    for i in range(5):
        producer.produce(topic, key=marker, value=str(i))
    assert producer.flush(10) == 0
    records = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", platform.kafka.bootstrap_servers)
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .load()
        .where(f"CAST(key AS STRING) = '{marker}'")
    )
    assert sorted(int(r.value) for r in records.selectExpr("CAST(value AS STRING) AS value").collect()) == list(range(5))
