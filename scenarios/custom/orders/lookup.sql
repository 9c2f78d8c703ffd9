-- A customer looks at their last orders and at how many of an item are left.
\set item random(1, 1000)
SELECT id, item_id, qty, placed_at FROM orders WHERE customer = :client_id ORDER BY id DESC LIMIT 10;
SELECT qty FROM stock WHERE item_id = :item;
