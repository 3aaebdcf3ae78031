"""No telefunc files here."""
