-- The shop: 1,000 items with plenty of stock, and the orders taken from it.
CREATE TABLE stock (
    item_id int PRIMARY KEY,
    qty     int NOT NULL CHECK (qty >= 0)
);

CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    request_id uuid NOT NULL UNIQUE,      -- the client's :txid: one row per acknowledged order
    customer   int NOT NULL,
    item_id    int NOT NULL REFERENCES stock,
    qty        int NOT NULL,
    placed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX orders_customer ON orders (customer, id);

INSERT INTO stock (item_id, qty)
SELECT i, 1000000 FROM generate_series(1, 1000) AS i;
