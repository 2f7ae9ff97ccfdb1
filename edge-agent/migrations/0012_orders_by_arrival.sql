-- The speed-of-service report (docs/floor.md#reports) reads the orders that arrived in a period.
-- The box keeps every order, so without this every report scans them all (50 ms per query over
-- a month of a busy kitchen on the benchmark machine, five queries per report, growing for
-- ever). `received_at` is written once, with the order, and grows: each new order adds its
-- entry to the index's last page, in the transaction that already writes the order.
CREATE INDEX orders_received_idx ON orders (received_at);
