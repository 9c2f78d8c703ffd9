-- A customer orders a few units of one item: the shelf goes down and the order goes
-- in, in one transaction, keyed by the client's :txid.
\set item random(1, 1000)
\set qty random(1, 5)
BEGIN;
UPDATE stock SET qty = qty - :qty WHERE item_id = :item;
INSERT INTO orders (request_id, customer, item_id, qty) VALUES (:txid, :client_id, :item, :qty);
END;
