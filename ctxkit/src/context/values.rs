//! Request-scoped values: an immutable chain of layers, each holding one value keyed by its
//! Rust type.
//!
//! A lookup walks from the innermost layer outwards and stops at the first layer whose type
//! matches, so an inner value shadows an outer one of the same type. Two packages cannot collide
//! by accident: a key is a type, and a private type is a private key.
//!
//! # Skipping ahead
//!
//! Layers are grouped in blocks of [`BLOCK`] by depth. Each layer keeps a 64-bit Bloom filter
//! of the types from the start of its block down to itself, and a `jump` pointer to the last
//! layer of the previous block. A lookup that finds its type's bit clear skips the rest of the
//! block in one step, so a 256-layer walk visits a few dozen layers, and a miss in a 16-layer
//! chain touches two or three.
//!
//! # Invariants
//!
//! 1. Layers never change after creation; no locks, no atomics.
//! 2. `bloom` has the bit of every layer's type from the first layer of this layer's block down
//!    to this one; `jump` is the parent of that first layer.

use std::any::{Any, TypeId};
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::sync::Arc;

/// Layers per block (see "Skipping ahead").
const BLOCK: u32 = 8;

/// One value layer.
pub(crate) struct ValueNode {
    /// The next layer outwards.
    parent: Option<Arc<ValueNode>>,
    /// The parent of the first layer of this block (invariant 2).
    jump: Option<Arc<ValueNode>>,
    /// Types of this block's layers down to this one (invariant 2).
    bloom: u64,
    /// Number of layers outside this one.
    depth: u32,
    type_id: TypeId,
    type_name: &'static str,
    value: Box<dyn Any + Send + Sync>,
}

/// Takes the one `u64` that `TypeId`'s `Hash` writes (its bits are already a hash).
#[derive(Default)]
struct TypeIdHasher(u64);

impl Hasher for TypeIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 ^= value;
    }
}

fn bloom_bit(type_id: TypeId) -> u64 {
    let mut hasher = TypeIdHasher::default();
    type_id.hash(&mut hasher);
    let hash = hasher.finish();
    1 << ((hash ^ (hash >> 29) ^ (hash >> 47)) & 63)
}

impl ValueNode {
    /// A layer holding `value` inside `parent`.
    pub(crate) fn new<T: Any + Send + Sync>(parent: Option<Arc<ValueNode>>, value: T) -> ValueNode {
        let type_id = TypeId::of::<T>();
        let depth = parent.as_ref().map_or(0, |p| p.depth + 1);
        let (jump, bloom) = match &parent {
            Some(p) if depth % BLOCK != 0 => (p.jump.clone(), p.bloom | bloom_bit(type_id)),
            _ => (parent.clone(), bloom_bit(type_id)),
        };
        ValueNode {
            parent,
            jump,
            bloom,
            depth,
            type_id,
            type_name: std::any::type_name::<T>(),
            value: Box::new(value),
        }
    }

    /// The innermost value of type `T` in the chain that starts at `head`.
    #[inline]
    pub(crate) fn lookup<T: Any>(head: Option<&ValueNode>) -> Option<&T> {
        let type_id = TypeId::of::<T>();
        let bit = bloom_bit(type_id);
        let mut layer = head;
        while let Some(node) = layer {
            if node.bloom & bit == 0 {
                // Invariant 2: no layer from here to the start of the block holds a T.
                layer = node.jump.as_deref();
            } else if node.type_id == type_id {
                return node.value.downcast_ref::<T>();
            } else {
                layer = node.parent.as_deref();
            }
        }
        None
    }

    /// Type names from the innermost layer outwards (for `Debug`).
    pub(crate) fn type_names(head: Option<&ValueNode>) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut layer = head;
        while let Some(node) = layer {
            names.push(node.type_name);
            layer = node.parent.as_deref();
        }
        names
    }
}

impl Drop for ValueNode {
    fn drop(&mut self) {
        // Unwind a long chain iteratively: a recursive drop of 100,000 layers would overflow
        // the stack.
        let mut parent = self.parent.take();
        self.jump = None;
        while let Some(node) = parent {
            match Arc::try_unwrap(node) {
                Ok(mut node) => {
                    node.jump = None;
                    parent = node.parent.take();
                }
                Err(_) => break,
            }
        }
    }
}

impl fmt::Debug for ValueNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueNode")
            .field("type", &self.type_name)
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Layer<const N: usize>(usize);

    fn chain(depth: usize) -> Option<Arc<ValueNode>> {
        let mut head: Option<Arc<ValueNode>> = None;
        for i in 0..depth {
            head = Some(Arc::new(match i % 5 {
                0 => ValueNode::new(head, Layer::<0>(i)),
                1 => ValueNode::new(head, Layer::<1>(i)),
                2 => ValueNode::new(head, Layer::<2>(i)),
                3 => ValueNode::new(head, Layer::<3>(i)),
                _ => ValueNode::new(head, i as u64),
            }));
        }
        head
    }

    #[test]
    fn finds_the_innermost_of_each_type_at_every_depth() {
        for depth in 0..40 {
            let head = chain(depth);
            let head = head.as_deref();
            let innermost = |r: usize| (0..depth).rev().find(|i| i % 5 == r);
            assert_eq!(
                ValueNode::lookup::<Layer<0>>(head).map(|l| l.0),
                innermost(0)
            );
            assert_eq!(
                ValueNode::lookup::<Layer<1>>(head).map(|l| l.0),
                innermost(1)
            );
            assert_eq!(
                ValueNode::lookup::<Layer<2>>(head).map(|l| l.0),
                innermost(2)
            );
            assert_eq!(
                ValueNode::lookup::<Layer<3>>(head).map(|l| l.0),
                innermost(3)
            );
            assert_eq!(
                ValueNode::lookup::<u64>(head).map(|v| *v as usize),
                innermost(4)
            );
            assert!(ValueNode::lookup::<String>(head).is_none());
        }
    }

    #[test]
    fn a_long_chain_drops_without_overflowing_the_stack() {
        let head = chain(200_000);
        assert!(ValueNode::lookup::<Layer<0>>(head.as_deref()).is_some());
        drop(head);
    }
}
