-- alt_svc: the Alt-Svc header an h1/h2 response advertised
-- (result.HTTP.AltSvc): how a client learns a target serves HTTP/3.
ALTER TABLE {{.Alter "results"}} ADD COLUMN alt_svc String
