CREATE TABLE "jobs"."pipelines" (
	"id" uuid PRIMARY KEY NOT NULL,
	"user_id" uuid NOT NULL,
	"project_id" uuid,
	"type" text NOT NULL,
	"flavor" text NOT NULL,
	"input" jsonb NOT NULL,
	"params" jsonb NOT NULL,
	"tier" text NOT NULL,
	"status" text NOT NULL,
	"stages" jsonb NOT NULL,
	"outputs" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"error" jsonb,
	"credits" integer DEFAULT 0 NOT NULL,
	"cost_usd" double precision DEFAULT 0 NOT NULL,
	"estimate" jsonb NOT NULL,
	"last_event_seq" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "pipeline_id" uuid;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "pipeline_stage" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "pipeline_order" integer;--> statement-breakpoint
CREATE INDEX "pipelines_user_created_idx" ON "jobs"."pipelines" USING btree ("user_id","created_at");--> statement-breakpoint
CREATE INDEX "pipelines_active_idx" ON "jobs"."pipelines" USING btree ("updated_at") WHERE status in ('queued', 'running');--> statement-breakpoint
CREATE INDEX "jobs_pipeline_idx" ON "jobs"."jobs" USING btree ("pipeline_id","pipeline_stage","pipeline_order");