//! `max_deliveries` is a count (`u32`).

use necrostack::RedisBackend;

fn main() {
    let _backend = RedisBackend::builder("redis://127.0.0.1:6379").max_deliveries(-1);
}
