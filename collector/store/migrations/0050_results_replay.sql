-- replay = 1 marks a row that may already be stored: the collector
-- inserting again after an insert whose outcome it does not know (a
-- failure, a restart), or an agent sending a batch again. At most one copy
-- of a row has replay = 0, so queries count replay = 0 rows as they are and
-- fold only the replay = 1 ones (query/rows.go), instead of reading every
-- row FINAL. Rows stored before this column default to 0.
ALTER TABLE {{.Alter "results"}} ADD COLUMN replay UInt8 DEFAULT 0
