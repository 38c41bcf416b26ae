//! The [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour) of a wrapper
//! that changes its behaviour's connection handlers and at most when the
//! behaviour is polled ([`Woken`](crate::Woken), [`Listed`](crate::Listed)).

/// For `$wrapper<B>`, which has the inherent methods `inner(&self) -> &B`,
/// `inner_mut(&mut self) -> &mut B` (every call of `B`'s methods goes
/// through it) and `poll_inner(&mut self, cx)` (`B`'s poll, or `Pending`):
/// derefs to `B` (so its methods and fields are reached as before) and is
/// `B` as a behaviour, with every connection handler `B` makes passed
/// through `$handler::new`.
macro_rules! handler_wrapper {
    ($wrapper:ident, $handler:ident) => {
        impl<B> ::std::ops::Deref for $wrapper<B> {
            type Target = B;

            fn deref(&self) -> &B {
                self.inner()
            }
        }

        impl<B> ::std::ops::DerefMut for $wrapper<B> {
            fn deref_mut(&mut self) -> &mut B {
                self.inner_mut()
            }
        }

        impl<B: ::libp2p::swarm::NetworkBehaviour> ::libp2p::swarm::NetworkBehaviour
            for $wrapper<B>
        {
            type ConnectionHandler = $handler<::libp2p::swarm::THandler<B>>;
            type ToSwarm = B::ToSwarm;

            fn handle_pending_inbound_connection(
                &mut self,
                connection_id: ::libp2p::swarm::ConnectionId,
                local_addr: &::libp2p::core::Multiaddr,
                remote_addr: &::libp2p::core::Multiaddr,
            ) -> Result<(), ::libp2p::swarm::ConnectionDenied> {
                self.inner_mut().handle_pending_inbound_connection(
                    connection_id,
                    local_addr,
                    remote_addr,
                )
            }

            fn handle_established_inbound_connection(
                &mut self,
                connection_id: ::libp2p::swarm::ConnectionId,
                peer: ::libp2p::PeerId,
                local_addr: &::libp2p::core::Multiaddr,
                remote_addr: &::libp2p::core::Multiaddr,
            ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
                self.inner_mut()
                    .handle_established_inbound_connection(
                        connection_id,
                        peer,
                        local_addr,
                        remote_addr,
                    )
                    .map($handler::new)
            }

            fn handle_pending_outbound_connection(
                &mut self,
                connection_id: ::libp2p::swarm::ConnectionId,
                maybe_peer: Option<::libp2p::PeerId>,
                addresses: &[::libp2p::core::Multiaddr],
                effective_role: ::libp2p::core::Endpoint,
            ) -> Result<Vec<::libp2p::core::Multiaddr>, ::libp2p::swarm::ConnectionDenied> {
                self.inner_mut().handle_pending_outbound_connection(
                    connection_id,
                    maybe_peer,
                    addresses,
                    effective_role,
                )
            }

            fn handle_established_outbound_connection(
                &mut self,
                connection_id: ::libp2p::swarm::ConnectionId,
                peer: ::libp2p::PeerId,
                addr: &::libp2p::core::Multiaddr,
                role_override: ::libp2p::core::Endpoint,
                port_use: ::libp2p::core::transport::PortUse,
            ) -> Result<::libp2p::swarm::THandler<Self>, ::libp2p::swarm::ConnectionDenied> {
                self.inner_mut()
                    .handle_established_outbound_connection(
                        connection_id,
                        peer,
                        addr,
                        role_override,
                        port_use,
                    )
                    .map($handler::new)
            }

            fn on_swarm_event(&mut self, event: ::libp2p::swarm::FromSwarm) {
                self.inner_mut().on_swarm_event(event);
            }

            fn on_connection_handler_event(
                &mut self,
                peer_id: ::libp2p::PeerId,
                connection_id: ::libp2p::swarm::ConnectionId,
                event: ::libp2p::swarm::THandlerOutEvent<Self>,
            ) {
                self.inner_mut()
                    .on_connection_handler_event(peer_id, connection_id, event);
            }

            fn poll(
                &mut self,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<
                ::libp2p::swarm::ToSwarm<B::ToSwarm, ::libp2p::swarm::THandlerInEvent<Self>>,
            > {
                self.poll_inner(cx)
            }
        }
    };
}

pub(crate) use handler_wrapper;
