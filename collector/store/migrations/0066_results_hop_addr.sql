-- hop_addr: the address that answered at each hop; '' where none did.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_addr Array(String)
