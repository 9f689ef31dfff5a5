//! HTTP/3 and WebTransport sessions over our quinn-proto driver.
