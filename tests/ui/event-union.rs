use necrostack::Event;

#[derive(Event)]
union Ping {
    number: u32,
    float: f32,
}

fn main() {}
