//! `stream` takes a name.

use necrostack::RedisBackend;

fn main() {
    let _backend = RedisBackend::builder("redis://127.0.0.1:6379").stream(7);
}
