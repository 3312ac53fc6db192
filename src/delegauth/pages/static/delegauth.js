// The pages' one script (served from our origin: CSP script-src 'self').
