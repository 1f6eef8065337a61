//! The Redis builder's times are `Duration`s.

use necrostack::RedisBackend;

fn main() {
    let _backend = RedisBackend::builder("redis://127.0.0.1:6379").block_time(2);
}
