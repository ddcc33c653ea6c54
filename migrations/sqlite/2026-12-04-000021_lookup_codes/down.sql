DROP TABLE lookup_codes;
