//! How a node picks the next hop toward an operator (`Core::route`) and another one when
//! it must avoid a hop (`Core::route_avoiding`). Found by cargo-mutants (directory.rs): no
//! test pinned the choice down where several ways exist.

use super::net::Net;
use crate::directory::Route;

/// a, b (operators), r1 and r2 (relays, in that roster order); nothing connected yet.
fn four() -> Net {
    Net::new(&[("a", false), ("b", false), ("r1", true), ("r2", true)])
}

#[test]
fn the_next_hop_is_the_destination_then_a_connected_relay_then_the_first_relay() {
    let mut net = four();
    let (b, r1, r2) = (net.id(1), net.id(2), net.id(3));
    // Nothing up, no address to dial b at: through the first relay.
    assert_eq!(net.core(0).route(&b), Route::Peer(r1));
    // A relay that is up is preferred.
    net.connect(0, 3);
    assert_eq!(net.core(0).route(&b), Route::Peer(r2));
    // The destination itself once it is up.
    net.connect(0, 1);
    assert_eq!(net.core(0).route(&b), Route::Peer(b));
    // A relay never routes through itself: r1, with nothing up, goes through r2.
    assert_eq!(net.core(2).route(&b), Route::Peer(r2));
    // A relay with no other relay to go through dials the destination itself.
    let net = Net::new(&[("a", false), ("b", false), ("r1", true)]);
    let b = net.id(1);
    assert_eq!(net.core(2).route(&b), Route::Peer(b));
}

#[test]
fn another_way_avoids_the_given_hop() {
    let mut net = four();
    let (b, r1, r2) = (net.id(1), net.id(2), net.id(3));
    // Nothing up: no other way.
    assert_eq!(net.core(0).route_avoiding(&b, &r1), None);
    // Another relay that is up.
    net.connect(0, 3);
    assert_eq!(net.core(0).route_avoiding(&b, &r1), Some(r2));
    assert_eq!(
        net.core(0).route_avoiding(&b, &r2),
        None,
        "not the avoided one"
    );
    // The destination itself when it is up, unless it is the one to avoid.
    net.connect(0, 1);
    assert_eq!(net.core(0).route_avoiding(&b, &r1), Some(b));
    assert_eq!(net.core(0).route_avoiding(&b, &b), Some(r2));
}
