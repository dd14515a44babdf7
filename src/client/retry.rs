//! A money request that has been sent but not yet answered, and what a retry with the same
//! transaction id tells the person.
//!
//! The bank applies a transaction id at most once and answers a repeat with the first
//! outcome, so resending a [`Pending`] request after a broken connection is always safe.
//! The answer to a repeat looks like the answer to a first application, so [`classify`]
//! compares the balance read at the new login with the balance in the answer: a fresh
//! application moves the balance by the request's amount, a repeat moves it by nothing.

use crate::message::{Request, TxId, hex};
use crate::money::format_cents;

/// What a money request does to the session's own account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyAction {
    /// Add this many cents.
    Deposit(u64),
    /// Take this many cents out.
    Withdraw(u64),
    /// Move this many cents to the named account.
    Transfer {
        /// Amount in cents.
        amount_cents: u64,
        /// The receiving account.
        to: String,
    },
}

impl MoneyAction {
    /// The request that carries this action under `txid`.
    pub fn request(&self, txid: TxId) -> Request {
        match self {
            Self::Deposit(amount_cents) => Request::Deposit {
                txid,
                amount_cents: *amount_cents,
            },
            Self::Withdraw(amount_cents) => Request::Withdraw {
                txid,
                amount_cents: *amount_cents,
            },
            Self::Transfer { amount_cents, to } => Request::Transfer {
                txid,
                amount_cents: *amount_cents,
                to: to.clone(),
            },
        }
    }

    /// The change to the sender's balance when applied, in cents.
    pub fn balance_change(&self) -> i128 {
        match self {
            Self::Deposit(amount) => i128::from(*amount),
            Self::Withdraw(amount)
            | Self::Transfer {
                amount_cents: amount, ..
            } => -i128::from(*amount),
        }
    }

    /// In words, e.g. `transfer of 12.34 to alice`.
    pub fn describe(&self) -> String {
        match self {
            Self::Deposit(amount) => format!("deposit of {}", format_cents(*amount)),
            Self::Withdraw(amount) => format!("withdrawal of {}", format_cents(*amount)),
            Self::Transfer { amount_cents, to } => format!("transfer of {} to {to}", format_cents(*amount_cents)),
        }
    }
}

/// A money request and the transaction id it was (or will be) sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The id: reused for every retry of this one action.
    pub txid: TxId,
    /// What it does.
    pub action: MoneyAction,
}

impl Pending {
    /// The request to send (first time or retry: the same bytes).
    pub fn request(&self) -> Request {
        self.action.request(self.txid)
    }

    /// The id in hex, as printed for the person to keep.
    pub fn txid_hex(&self) -> String {
        hex(&self.txid)
    }
}

/// What a retry's answer shows about when the request was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryOutcome {
    /// The answer's balance is the balance already there at the new login: the server
    /// applied the request before the connection broke and answered the retry from memory.
    AppliedBefore,
    /// The answer's balance is the login balance moved by the request's amount: this retry
    /// applied it.
    AppliedNow,
    /// Neither: other activity on the account moved the balance in between, so the balance
    /// cannot say when. The id still guarantees it was applied once.
    AppliedOnce,
}

/// Tells apart a repeat from a first application by the balance read at the new login
/// (`balance_at_login`) and the balance in the retry's answer (`answered_balance`).
/// The request's amount is never zero, so the two cases cannot look alike unless another
/// movement on the account (an incoming transfer, another session) happened in between.
pub fn classify(action: &MoneyAction, balance_at_login: u64, answered_balance: u64) -> RetryOutcome {
    let expected_if_new = i128::from(balance_at_login) + action.balance_change();
    if i128::from(answered_balance) == expected_if_new {
        RetryOutcome::AppliedNow
    } else if answered_balance == balance_at_login {
        RetryOutcome::AppliedBefore
    } else {
        RetryOutcome::AppliedOnce
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_equal_to_the_login_balance_means_it_was_applied_before_the_break() {
        assert_eq!(
            classify(&MoneyAction::Deposit(250), 10_250, 10_250),
            RetryOutcome::AppliedBefore
        );
        let transfer = MoneyAction::Transfer {
            amount_cents: 1_000,
            to: "bob".into(),
        };
        assert_eq!(classify(&transfer, 9_000, 9_000), RetryOutcome::AppliedBefore);
    }

    #[test]
    fn an_answer_moved_by_the_amount_means_it_was_applied_now() {
        assert_eq!(
            classify(&MoneyAction::Deposit(250), 10_000, 10_250),
            RetryOutcome::AppliedNow
        );
        assert_eq!(
            classify(&MoneyAction::Withdraw(250), 10_000, 9_750),
            RetryOutcome::AppliedNow
        );
    }

    #[test]
    fn any_other_answer_claims_only_that_it_was_applied_once() {
        assert_eq!(
            classify(&MoneyAction::Withdraw(250), 10_000, 12_000),
            RetryOutcome::AppliedOnce
        );
    }

    #[test]
    fn a_retry_sends_the_same_request_bytes() {
        let pending = Pending {
            txid: [7; 16],
            action: MoneyAction::Transfer {
                amount_cents: 5,
                to: "alice".into(),
            },
        };
        assert_eq!(pending.request().encode(), pending.request().encode());
        assert_eq!(pending.txid_hex(), "07".repeat(16));
    }
}
