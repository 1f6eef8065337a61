//! `InMemoryBackend::bounded` takes the capacity.

use necrostack::InMemoryBackend;

fn main() {
    let _backend = InMemoryBackend::bounded();
}
