//! Authorisation decisions, all through Cedar (`cedar-policy`): the policy set is parsed once;
//! each decision names the policy that decided it, or `default-deny`.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::str::FromStr;
use std::sync::Mutex;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet,
    Request, RestrictedExpression,
};

use crate::error::{CoreError, Result};
use crate::types::Role;

pub const CONSOLE_POLICY: &str = include_str!("../policy/console.cedar");

/// An action a principal asks to perform in the console or the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    DirectoryRead,
    DirectoryWrite,
    PeopleRead,
    PeopleWrite,
    PeopleImport,
    UsersManage,
    LedgerRead,
    LedgerVerify,
    LedgerReview,
    LedgerExport,
    DoorsRead,
    DoorsWrite,
    DoorsCredentials,
    DoorsApprove,
    DoorsAgent,
    DoorsMonitor,
    AlarmsAck,
    VisitorsManage,
    VaultSchema,
    VaultHolders,
    VaultUse,
    VaultCopies,
    RegistersRead,
    RegistersWrite,
    IncidentsReport,
    RegistersSignOff,
    PledgesSign,
}

impl Action {
    pub const ALL: &'static [Action] = &[
        Action::DirectoryRead,
        Action::DirectoryWrite,
        Action::PeopleRead,
        Action::PeopleWrite,
        Action::PeopleImport,
        Action::UsersManage,
        Action::LedgerRead,
        Action::LedgerVerify,
        Action::LedgerReview,
        Action::LedgerExport,
        Action::DoorsRead,
        Action::DoorsWrite,
        Action::DoorsCredentials,
        Action::DoorsApprove,
        Action::DoorsAgent,
        Action::DoorsMonitor,
        Action::AlarmsAck,
        Action::VisitorsManage,
        Action::VaultSchema,
        Action::VaultHolders,
        Action::VaultUse,
        Action::VaultCopies,
        Action::RegistersRead,
        Action::RegistersWrite,
        Action::IncidentsReport,
        Action::RegistersSignOff,
        Action::PledgesSign,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DirectoryRead => "directory.read",
            Action::DirectoryWrite => "directory.write",
            Action::PeopleRead => "people.read",
            Action::PeopleWrite => "people.write",
            Action::PeopleImport => "people.import",
            Action::UsersManage => "users.manage",
            Action::LedgerRead => "ledger.read",
            Action::LedgerVerify => "ledger.verify",
            Action::LedgerReview => "ledger.review",
            Action::LedgerExport => "ledger.export",
            Action::DoorsRead => "doors.read",
            Action::DoorsWrite => "doors.write",
            Action::DoorsCredentials => "doors.credentials",
            Action::DoorsApprove => "doors.approve",
            Action::DoorsAgent => "doors.agent",
            Action::DoorsMonitor => "doors.monitor",
            Action::AlarmsAck => "alarms.ack",
            Action::VisitorsManage => "visitors.manage",
            Action::VaultSchema => "vault.schema",
            Action::VaultHolders => "vault.holders",
            Action::VaultUse => "vault.use",
            Action::VaultCopies => "vault.copies",
            Action::RegistersRead => "registers.read",
            Action::RegistersWrite => "registers.write",
            Action::IncidentsReport => "incidents.report",
            Action::RegistersSignOff => "registers.signoff",
            Action::PledgesSign => "pledges.sign",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The @id of the deciding policy, or `default-deny`.
    pub rule: String,
}

/// A bounded memo of a pure decision: the same inputs always give the same answer under one
/// policy set, so each distinct question is put to Cedar once. It is emptied when it grows past
/// its bound, and goes with the policy set it belongs to.
pub(crate) struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
}

impl<K: Hash + Eq, V: Clone> Memo<K, V> {
    const MAX: usize = 8192;

    pub(crate) fn new() -> Self {
        Self { map: Mutex::new(HashMap::new()) }
    }

    pub(crate) fn get_or(&self, key: K, ask: impl FnOnce() -> Result<V>) -> Result<V> {
        if let Some(v) = self.map.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(v);
        }
        let v = ask()?;
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(key, v.clone());
        }
        Ok(v)
    }
}

/// The `@id` of each policy, read once.
pub(crate) fn policy_ids(policies: &PolicySet) -> HashMap<cedar_policy::PolicyId, String> {
    policies.policies().filter_map(|p| p.annotation("id").map(|id| (p.id().clone(), id.to_owned()))).collect()
}

pub struct Authz {
    policies: PolicySet,
    ids: HashMap<cedar_policy::PolicyId, String>,
    memo: Memo<(i64, Vec<Role>, bool, Action), Decision>,
    authorizer: Authorizer,
    /// Entity types parsed once (parsing a name runs Cedar's parser).
    user_ty: EntityTypeName,
    role_ty: EntityTypeName,
    action_ty: EntityTypeName,
    console: EntityUid,
}

fn entity_type(ty: &str) -> Result<EntityTypeName> {
    EntityTypeName::from_str(ty).map_err(|e| CoreError::Internal(format!("entity type: {e}")))
}

impl Authz {
    pub fn new() -> Result<Self> {
        Self::from_text(CONSOLE_POLICY)
    }

    pub fn from_text(text: &str) -> Result<Self> {
        let policies = PolicySet::from_str(text).map_err(|e| CoreError::Config(format!("policy: {e}")))?;
        Ok(Self {
            ids: policy_ids(&policies),
            memo: Memo::new(),
            policies,
            authorizer: Authorizer::new(),
            user_ty: entity_type("User")?,
            role_ty: entity_type("Role")?,
            action_ty: entity_type("Action")?,
            console: EntityUid::from_type_name_and_id(entity_type("Console")?, EntityId::new("main")),
        })
    }

    fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
    }

    /// Decides whether a user with `roles` may perform `action`.
    pub fn decide(&self, user_id: i64, roles: &[Role], disabled: bool, action: Action) -> Result<Decision> {
        self.memo.get_or((user_id, roles.to_vec(), disabled, action), || self.ask(user_id, roles, disabled, action))
    }

    fn ask(&self, user_id: i64, roles: &[Role], disabled: bool, action: Action) -> Result<Decision> {
        let principal = Self::uid(&self.user_ty, &user_id.to_string());
        let mut parents = HashSet::new();
        let mut entities = Vec::new();
        for r in roles {
            let ru = Self::uid(&self.role_ty, r.as_str());
            parents.insert(ru.clone());
            entities.push(Entity::new_no_attrs(ru, HashSet::new()));
        }
        let attrs = HashMap::from([("disabled".to_owned(), RestrictedExpression::new_bool(disabled))]);
        let user = Entity::new(principal.clone(), attrs, parents).map_err(|e| CoreError::Internal(e.to_string()))?;
        entities.push(user);
        let entities = Entities::from_entities(entities, None).map_err(|e| CoreError::Internal(e.to_string()))?;
        let request = Request::new(principal, Self::uid(&self.action_ty, action.as_str()), self.console.clone(), Context::empty(), None)
            .map_err(|e| CoreError::Internal(e.to_string()))?;
        let resp = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let rule = resp
            .diagnostics()
            .reason()
            .find_map(|pid| self.ids.get(pid).cloned())
            .unwrap_or_else(|| "default-deny".to_owned());
        Ok(Decision { allowed: resp.decision() == CedarDecision::Allow, rule })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_actions() {
        let a = Authz::new().unwrap();
        let d = a.decide(1, &[Role::Admin], false, Action::UsersManage).unwrap();
        assert!(d.allowed);
        assert_eq!(d.rule, "admin-all");
        let d = a.decide(2, &[Role::Operator], false, Action::PeopleWrite).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.rule, "default-deny");
        assert!(a.decide(3, &[Role::Reception], false, Action::PeopleRead).unwrap().allowed);
        assert!(!a.decide(3, &[Role::Reception], false, Action::LedgerRead).unwrap().allowed);
        // forbid overrides permit
        let d = a.decide(1, &[Role::Admin], true, Action::DirectoryRead).unwrap();
        assert!(!d.allowed);
        assert_eq!(d.rule, "disabled-accounts-nothing");
        assert!(!a.decide(4, &[], false, Action::DirectoryRead).unwrap().allowed);
    }
}
