ALTER TABLE "jobs"."jobs" ADD COLUMN "held" boolean DEFAULT false NOT NULL;--> statement-breakpoint
CREATE SEQUENCE IF NOT EXISTS "jobs"."jobs_queue_order_seq";--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "queue_order" bigint;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ALTER COLUMN "queue_order" SET DEFAULT nextval('"jobs"."jobs_queue_order_seq"');--> statement-breakpoint
CREATE INDEX "jobs_user_active_idx" ON "jobs"."jobs" USING btree ("user_id","held","queue_order") WHERE status in ('queued', 'running');
