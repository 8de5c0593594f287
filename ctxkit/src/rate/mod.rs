//! Rate limiting: token-bucket Limiter and Ticker (issue 4: in progress).
