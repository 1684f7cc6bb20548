VALUE = "from extra"
