// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ContributionMarket} from "../ContributionMarket.sol";

/// @title ReentrantTrainer
/// @notice TEST ONLY: a malicious trainer whose receive() re-enters the market during a
///         payout, to prove withdraw/reclaim cannot be drained by re-entrancy.
contract ReentrantTrainer {
    ContributionMarket public immutable market;
    uint256 public projectId;
    bool private _attacking;

    constructor(ContributionMarket market_) {
        market = market_;
    }

    function join(uint256 projectId_) external payable {
        projectId = projectId_;
        market.register{value: msg.value}(projectId_);
    }

    function commit(uint256 round, bytes32 cidDigest) external {
        market.commitUpdate(
            projectId,
            round,
            market.updateCommitment(cidDigest, bytes32(0), bytes32(0), address(this), projectId, round)
        );
    }

    function reveal(uint256 round, bytes32 cidDigest) external {
        ContributionMarket.Reveal[] memory r = new ContributionMarket.Reveal[](1);
        r[0] = ContributionMarket.Reveal(address(this), cidDigest, bytes32(0), bytes32(0));
        market.revealUpdates(projectId, round, r);
    }

    function cashOut() external {
        _attacking = true;
        market.withdraw(projectId, new ContributionMarket.Claim[](0));
    }

    receive() external payable {
        if (_attacking) {
            _attacking = false;
            market.withdraw(projectId, new ContributionMarket.Claim[](0));
        }
    }
}
