//! A Redis backend is made with `RedisBackend::builder(url)...build().await?`.

use necrostack::RedisBackend;

fn main() {
    let _backend = RedisBackend::new("redis://127.0.0.1:6379");
}
