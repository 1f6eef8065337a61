//! [`Batch`]: a list that keeps a single item inline.
//!
//! A spine moves one event at a time far more often than many: a chain of organs pulls
//! one delivery and emits one event per step. Backends hand over deliveries and take
//! emitted events in a `Batch`, so that this common case allocates no `Vec`.

use std::ops::{Deref, DerefMut};

/// An ordered list of items that holds zero or one item without allocating.
///
/// It derefs to a slice (`len`, `iter`, indexing), converts from and into a `Vec`, and
/// iterates by value.
///
/// ```
/// use necrostack::backend::Batch;
///
/// let mut batch = Batch::new();
/// batch.push("first");
/// assert_eq!(batch.len(), 1);
/// batch.push("second");
/// assert_eq!(&batch[..], ["first", "second"]);
/// assert_eq!(batch.into_iter().collect::<Vec<_>>(), ["first", "second"]);
/// assert_eq!(Batch::from(vec![1, 2, 3]).into_vec(), [1, 2, 3]);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Batch<T> {
    repr: Repr<T>,
}

#[derive(Clone, PartialEq, Eq)]
enum Repr<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> Batch<T> {
    /// An empty batch.
    pub const fn new() -> Self {
        Batch {
            repr: Repr::Many(Vec::new()),
        }
    }

    /// A batch of one item, without allocating.
    pub const fn one(item: T) -> Self {
        Batch {
            repr: Repr::One(item),
        }
    }

    /// Adds `item` at the end.
    pub fn push(&mut self, item: T) {
        match &mut self.repr {
            Repr::Many(items) if items.is_empty() && items.capacity() == 0 => {
                self.repr = Repr::One(item);
            }
            Repr::Many(items) => items.push(item),
            Repr::One(_) => {
                let Repr::One(first) = std::mem::replace(&mut self.repr, Repr::Many(Vec::new()))
                else {
                    return;
                };
                self.repr = Repr::Many(vec![first, item]);
            }
        }
    }

    /// The items as a `Vec`.
    pub fn into_vec(self) -> Vec<T> {
        match self.repr {
            Repr::One(item) => vec![item],
            Repr::Many(items) => items,
        }
    }
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch::new()
    }
}

impl<T> Deref for Batch<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.repr {
            Repr::One(item) => std::slice::from_ref(item),
            Repr::Many(items) => items,
        }
    }
}

impl<T> DerefMut for Batch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.repr {
            Repr::One(item) => std::slice::from_mut(item),
            Repr::Many(items) => items,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Batch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> From<Vec<T>> for Batch<T> {
    fn from(items: Vec<T>) -> Self {
        Batch {
            repr: Repr::Many(items),
        }
    }
}

impl<T> From<Batch<T>> for Vec<T> {
    fn from(batch: Batch<T>) -> Self {
        batch.into_vec()
    }
}

impl<T> FromIterator<T> for Batch<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        let Some(first) = iter.next() else {
            return Batch::new();
        };
        match iter.next() {
            None => Batch::one(first),
            Some(second) => {
                let mut items = Vec::with_capacity(iter.size_hint().0.saturating_add(2));
                items.push(first);
                items.push(second);
                items.extend(iter);
                Batch::from(items)
            }
        }
    }
}

impl<T> Extend<T> for Batch<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for item in iter {
            self.push(item);
        }
    }
}

/// The by-value iterator of a [`Batch`].
#[derive(Debug)]
pub struct IntoIter<T> {
    repr: IterRepr<T>,
}

#[derive(Debug)]
enum IterRepr<T> {
    One(Option<T>),
    Many(std::vec::IntoIter<T>),
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.repr {
            IterRepr::One(item) => item.take(),
            IterRepr::Many(items) => items.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.repr {
            IterRepr::One(item) => {
                let n = usize::from(item.is_some());
                (n, Some(n))
            }
            IterRepr::Many(items) => items.size_hint(),
        }
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> DoubleEndedIterator for IntoIter<T> {
    fn next_back(&mut self) -> Option<T> {
        match &mut self.repr {
            IterRepr::One(item) => item.take(),
            IterRepr::Many(items) => items.next_back(),
        }
    }
}

impl<T> IntoIterator for Batch<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter {
            repr: match self.repr {
                Repr::One(item) => IterRepr::One(Some(item)),
                Repr::Many(items) => IterRepr::Many(items.into_iter()),
            },
        }
    }
}

impl<'a, T> IntoIterator for &'a Batch<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::Batch;

    #[test]
    fn one_item_stays_inline_and_order_is_kept() {
        let mut batch = Batch::new();
        assert!(batch.is_empty());
        batch.push(1);
        assert!(matches!(batch.repr, super::Repr::One(1)));
        batch.extend([2, 3]);
        assert_eq!(&batch[..], [1, 2, 3]);
        assert_eq!(
            batch.clone().into_iter().rev().collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(batch.into_vec(), [1, 2, 3]);
        assert_eq!((0..1).collect::<Batch<_>>().into_vec(), [0]);
        assert_eq!((0..4).collect::<Batch<_>>().len(), 4);
        assert!((0..0).collect::<Batch<i32>>().is_empty());
    }
}
