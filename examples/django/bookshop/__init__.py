"""A small Django project that reads its books through modelpack."""
