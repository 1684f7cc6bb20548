def handler(req)
    return 0
