//! Authentication: bearer extraction, JWT verification, the JWKS source and cache.
